# The secrets the service declares in settings.py (SecretManager("<name>")),
# by name: every environment gets each of them as <environment>-<name>, with
# only its runtime account allowed to read it. Terraform loads this file for
# every environment by itself: files ending in .auto.tfvars are read without a
# -var-file (https://developer.hashicorp.com/terraform/language/values/variables#variable-definitions-tfvars-files).
# tests/secrets/test_terraform.py checks that it lists what settings.py declares.
secrets = ["api-key"]
