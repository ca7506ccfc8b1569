# Where the staging state lives: terraform init -backend-config=environments/staging.backend.hcl
bucket = "{{ cookiecutter.gcp_project_id }}-tfstate"
prefix = "{{ cookiecutter.service_name }}/staging"
