# The quickstart's greeter instances as Consul service definitions, for
# `make run-consul`: the same four instances as catalog.yaml. v1 carries its
# version in service meta, v2 in a tag — weir reads both (--version-meta-key,
# --version-tag-prefix).
services {
  id      = "greeter-v1-a"
  name    = "greeter"
  address = "127.0.0.1"
  port    = 9101
  meta    = { version = "v1" }
}
services {
  id      = "greeter-v1-b"
  name    = "greeter"
  address = "127.0.0.1"
  port    = 9102
  meta    = { version = "v1" }
}
services {
  id      = "greeter-v2-a"
  name    = "greeter"
  address = "127.0.0.1"
  port    = 9201
  tags    = ["version=v2"]
}
services {
  id      = "greeter-v2-b"
  name    = "greeter"
  address = "127.0.0.1"
  port    = 9202
  tags    = ["version=v2"]
}
