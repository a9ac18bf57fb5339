api_image = "ghcr.io/acme/api:v1.2.3" # freshet: policy=semver:major
replicas  = 3
