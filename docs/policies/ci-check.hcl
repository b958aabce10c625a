# tokenctl team store: a CI job that checks expiry. The records, read-only: `list`,
# `show`, `check`, `store status`. No token's secrets: `token` is refused ("this identity
# may not read secrets", exit 4), and nothing can be written but the webhook notices
# `check` sends (below; leave those paths out if this job sends none).
#
# Mount "tokenctl", team path "acme-consultancy": change both to yours (docs/team.md).
# `bao policy write tokenctl-ci-check ci-check.hcl`

path "tokenctl/data/acme-consultancy/meta" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/counter" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/records/*" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/names/*" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/codes/*" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/history/*" {
  capabilities = ["read"]
}
path "tokenctl/metadata/acme-consultancy/records/" {
  capabilities = ["list"]
}
# What is left of the providers' token-call limits (`show`, `doctor`).
path "tokenctl/data/acme-consultancy/budgets/*" {
  capabilities = ["read"]
}

# Webhook notices (`tokenctl notify`): the last notice about each token, shared by every
# machine so that a state is sent once (emptied, never removed, when nothing is left). And the
# webhooks' signing secrets, read to sign (set by the consultant: `notify add
# --secret-stdin`).
path "tokenctl/data/acme-consultancy/notices/*" {
  capabilities = ["create", "read", "update"]
}
path "tokenctl/metadata/acme-consultancy/notices/" {
  capabilities = ["list"]
}
path "tokenctl/data/acme-consultancy/webhooks/*" {
  capabilities = ["read"]
}
