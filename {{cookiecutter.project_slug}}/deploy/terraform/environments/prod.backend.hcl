# Where the prod state lives: terraform init -backend-config=environments/prod.backend.hcl
bucket = "{{ cookiecutter.gcp_project_id }}-tfstate"
prefix = "{{ cookiecutter.service_name }}/prod"
