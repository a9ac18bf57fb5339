resource "x" "y" {
  image = "nginx:1.25.3" # freshet: policy=semver:patch
  broken = [
}
