# Pub/Sub messages: a topic per topic the code's subscribers name, and a push
# subscription per subscriber (`@subscriber`, written to
# deploy/subscriptions.json by `make triggers`) that delivers to
# /_pubsub/<subscriber> with an ID token for the invoker account, the identity
# Cloud Tasks uses, so the push endpoints check both alike
# (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions).
# Messages that keep failing go to a dead-letter topic, whose own
# subscription keeps them for a week to inspect or replay.

variable "subscriptions" {
  type = map(object({
    topic = string
  }))
  description = "The subscribers the code declares, by name: deploy/subscriptions.json."
}

locals {
  topics = toset([for subscription in values(var.subscriptions) : subscription.topic])
  # Pub/Sub's service agent: it signs the push tokens and forwards messages
  # to the dead-letter topic (https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions).
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  week         = "604800s"
}

resource "google_pubsub_topic" "topics" {
  # checkov:skip=CKV_GCP_83: Google-managed encryption; customer-managed keys are an organisation's choice
  for_each                   = local.topics
  project                    = var.project_id
  name                       = "${local.name}-${each.value}"
  message_retention_duration = local.week

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83: Google-managed encryption; customer-managed keys are an organisation's choice
  project = var.project_id
  name    = "${local.name}-dead-letter"

  depends_on = [google_project_service.apis]
}

# A topic keeps no message by itself: this subscription holds the dead
# letters until someone pulls them.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${local.name}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = local.week
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "push" {
  for_each = var.subscriptions
  project  = var.project_id
  name     = "${local.name}-${each.key}"
  topic    = google_pubsub_topic.topics[each.value.topic].id
  # For a push subscription, how long Pub/Sub waits for the answer before it
  # delivers again (at most 600 s): the service's request timeout.
  ack_deadline_seconds       = min(var.request_timeout_seconds, 600)
  message_retention_duration = local.week

  push_config {
    push_endpoint = "${local.service_url}/_pubsub/${each.key}"

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.service_url
    }
  }

  # A nacked message (any answer but 102, 200, 201, 202, 204) comes back
  # with backoff (https://cloud.google.com/pubsub/docs/handling-failures#exponential_backoff);
  # after 10 deliveries it goes to the dead-letter topic.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 10
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic_iam_member.agent_dead_letters]
}

# Dead-lettering needs the service agent to publish to the dead-letter topic
# and to acknowledge on each subscription it forwards from
# (https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions).
resource "google_pubsub_topic_iam_member" "agent_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_forwards" {
  for_each     = google_pubsub_subscription.push
  project      = var.project_id
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# The service agent makes the invoker's ID tokens for the pushes: needed in
# projects made before 8 April 2021, harmless after, and granted on the
# invoker account alone (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions).
resource "google_service_account_iam_member" "agent_signs_as_invoker" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
