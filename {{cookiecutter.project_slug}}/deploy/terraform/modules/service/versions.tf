terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    # Written against 8.7's schema; a minor release adds arguments, never removes one.
    google = {
      source  = "hashicorp/google"
      version = ">= 8.7, < 9.0"
    }
  }
}
