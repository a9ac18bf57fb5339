locals {
  images = {
    api = "ghcr.io/acme/api:v1.2.3" # freshet: policy=semver:minor
    web = "nginx:1.25.3"
  }
}

resource "aws_ecs_task_definition" "app" {
  family = "app"
  container_definitions = jsonencode([
    {
      name  = "web"
      image = "nginx:1.25.3" # freshet: policy=semver:patch pin=tag+digest
    },
    {
      "name"  = "sidecar"
      "image" = "busybox:1.36.0" // freshet: policy=semver:minor
    },
  ])
}

variable "base" {
  default = "postgres:15.4" /* not tracked: no marker */
}

variable "worker_image" {
  description = "tracked: named for an image"
  default     = "nginx:1.25.3" # freshet: policy=semver:patch
}

module "m" {
  source    = "./m"
  job_image = "nginx:${var.tag}" # interpolation: skipped
}
