# tokenctl team store: a CI job that uses the tokens of one definition. What ci-check
# may do, and `token REF` for the tokens of the definition "exact-online-nl" only: the
# secrets of any other definition's tokens are refused (exit 4). It writes nothing but the
# webhook notices `check` sends (leave those paths out if this job sends none): a token
# due for a refresh is renewed by support's cron (`tokenctl renew --all`), not here.
#
# Mount "tokenctl", team path "acme-consultancy", definition "exact-online-nl": change
# them to yours (docs/team.md); one "secrets/<definition>/*" path per definition granted.
# `bao policy write tokenctl-ci-token ci-token.hcl`

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

# The one definition's token secrets.
path "tokenctl/data/acme-consultancy/secrets/exact-online-nl/*" {
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
