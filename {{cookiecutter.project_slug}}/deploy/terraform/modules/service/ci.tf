# Deployments from GitHub Actions without a service account key: Workload
# Identity Federation lets the repository's workflows act as the deployer
# (https://github.com/google-github-actions/auth#workload-identity-federation-through-a-service-account).

locals {
  deploys_from_github = var.github_repository != ""
  deployer_account_id = "${trimsuffix(substr(local.name, 0, 23), "-")}-deploy"
  pool_id             = "${trimsuffix(substr(local.name, 0, 29), "-")}-gh"
}

resource "google_service_account" "deployer" {
  count        = local.deploys_from_github ? 1 : 0
  project      = var.project_id
  account_id   = local.deployer_account_id
  display_name = "${local.name} (deploys from ${var.github_repository})"

  depends_on = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool" "github" {
  count                     = local.deploys_from_github ? 1 : 0
  project                   = var.project_id
  workload_identity_pool_id = local.pool_id
  display_name              = "GitHub Actions"

  depends_on = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  count                              = local.deploys_from_github ? 1 : 0
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub Actions OIDC"
  # Only jobs of this repository running in this GitHub environment (whose
  # protection rules, such as required reviewers for prod, apply) get in.
  # checkov:skip=CKV_GCP_125: the condition pins sub to repo:<github_repository>:environment:<environment>, variables checkov cannot resolve
  attribute_condition = "assertion.sub == \"repo:${var.github_repository}:environment:${var.environment}\""
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "github_acts_as_deployer" {
  count              = local.deploys_from_github ? 1 : 0
  service_account_id = google_service_account.deployer[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[0].name}/attribute.repository/${var.github_repository}"
}

# The deployer pushes images, rolls out revisions of this one service, and
# runs them as the runtime account: nothing else.
resource "google_artifact_registry_repository_iam_member" "deployer_pushes" {
  count      = local.deploys_from_github ? 1 : 0
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deployer[0].member
}

resource "google_cloud_run_v2_service_iam_member" "deployer_deploys" {
  count    = local.deploys_from_github ? 1 : 0
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.service.name
  role     = "roles/run.developer"
  member   = google_service_account.deployer[0].member
}

resource "google_service_account_iam_member" "deployer_acts_as_runtime" {
  count              = local.deploys_from_github ? 1 : 0
  service_account_id = google_service_account.runtime.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer[0].member
}
