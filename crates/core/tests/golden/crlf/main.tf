variable "api_image" {
  type    = string
  default = "ghcr.io/acme/api:v1.2.3" # freshet: policy=semver:minor
}

resource "kubernetes_deployment" "web" {
  spec {
    template {
      spec {
        container {
          name  = "web"
          image = "nginx:1.25.3" // freshet: policy=semver:patch
        }
        container {
          name  = "untracked"
          image = "nginx:1.25.3"
        }
      }
    }
  }
}
