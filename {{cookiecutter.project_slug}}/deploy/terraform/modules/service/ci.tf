# Deployments from GitHub Actions without a service account key: Workload
# Identity Federation lets the deploy jobs of one repository act as the
# deployer (https://github.com/google-github-actions/auth#workload-identity-federation-through-a-service-account).

locals {
  deploys_from_github = var.github_repository_id != ""
  deployer_account_id = "${trimsuffix(substr(local.name, 0, 23), "-")}-deploy"
  pool_id             = "${trimsuffix(substr(local.name, 0, 29), "-")}-gh"
}

locals {
  # Which GitHub tokens may sign in (their claims:
  # https://docs.github.com/en/actions/deployment/security-hardening-your-deployments/about-security-hardening-with-openid-connect):
  # - the repository and its owner by their numeric IDs, which GitHub never
  #   gives to anyone else, where a deleted name can be registered again
  #   (https://github.com/google-github-actions/auth/blob/main/docs/SECURITY_CONSIDERATIONS.md);
  # - a job in the GitHub environment of this name, whose protection rules
  #   (README: Deploy) apply;
  # - from what this environment deploys: main for dev, a v* tag for staging
  #   and prod. Any other branch, a pull request or a fork is refused.
  github_condition = join(" && ", [
    "assertion.repository_owner_id == '${var.github_repository_owner_id}'",
    "assertion.repository_id == '${var.github_repository_id}'",
    "assertion.environment == '${var.environment}'",
    var.environment == "dev" ? "assertion.ref == 'refs/heads/main'" : "assertion.ref.startsWith('refs/tags/v')",
  ])
}

resource "google_service_account" "deployer" {
  count        = local.deploys_from_github ? 1 : 0
  project      = var.project_id
  account_id   = local.deployer_account_id
  display_name = "${local.name} (deploys from GitHub)"

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
  # checkov:skip=CKV_GCP_125: the check reads only a literal assertion.sub; the condition pins the repository and owner by numeric ID (never reused, unlike the names in sub), the GitHub environment and the ref
  count                              = local.deploys_from_github ? 1 : 0
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub Actions OIDC"
  attribute_condition                = local.github_condition
  attribute_mapping = {
    "google.subject"                = "assertion.sub"
    "attribute.repository_id"       = "assertion.repository_id"
    "attribute.repository_owner_id" = "assertion.repository_owner_id"
    "attribute.environment"         = "assertion.environment"
    "attribute.ref"                 = "assertion.ref"
  }
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

# Only identities from that repository may act as the deployer.
resource "google_service_account_iam_member" "github_acts_as_deployer" {
  count              = local.deploys_from_github ? 1 : 0
  service_account_id = google_service_account.deployer[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[0].name}/attribute.repository_id/${var.github_repository_id}"
}

# The deployer pushes images, rolls out revisions of this one service, and
# runs them as the runtime account: nothing else
# (https://cloud.google.com/run/docs/reference/iam/roles#additional-configuration).
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
