# What Terraform makes in the dev environment: make tf-plan ENV=dev.
# Where dev runs (its project and region) is deploy/dev.env.
environment  = "dev"
service_name = "{{ cookiecutter.service_name }}"

# Instances kept warm (and billed) even without traffic, and the upper bound.
min_instances = {{ cookiecutter.min_instances }}
max_instances = {{ cookiecutter.max_instances }}

# An explicit choice: true lets anyone on the internet call the service.
public_access = {{ 'true' if cookiecutter.public_access else 'false' }}
invokers      = []

# The GitHub repository allowed to deploy here, by the numeric IDs GitHub
# never gives to another repository or owner (README: Deploy):
#   gh api repos/OWNER/REPO --jq '.id, .owner.id'
github_repository_id       = ""
github_repository_owner_id = ""
