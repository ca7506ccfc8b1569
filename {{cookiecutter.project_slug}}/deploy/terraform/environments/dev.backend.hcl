# Where the dev state lives: terraform init -backend-config=environments/dev.backend.hcl
bucket = "{{ cookiecutter.gcp_project_id }}-tfstate"
prefix = "{{ cookiecutter.service_name }}/dev"
