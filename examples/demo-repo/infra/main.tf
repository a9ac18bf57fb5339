variable "api_image" {
  type    = string
  default = "REGISTRY/team/api:1.0.0" # freshet: policy=semver:minor
}
