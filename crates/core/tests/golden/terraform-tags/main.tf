# Regression (issue 15): a tag-only default is never guessed as an image.
variable "image_tag" {
  type    = string
  default = "abc12345"
}

variable "api_version" {
  type    = string
  default = "v1.2.3" # freshet: image=ghcr.io/acme/api policy=semver:minor
}

resource "docker_image" "web" {
  name = "nginx:1.25.3"
}

data "docker_registry_image" "cache" {
  name = "redis:7.2" # freshet: policy=digest pin=tag+digest
}
