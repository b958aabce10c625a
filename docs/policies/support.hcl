# tokenctl team store: support staff and their cron host. Renew: `renew`, `renew --all`,
# a re-login (`renew --login`), a new hand-entered secret (`renew --secret-stdin`),
# `enable`/`disable`; and everything the read-only roles do (`list`, `show`, `check`,
# `token`). Not `add`, not `delete`, no client secrets: those stay the consultant's.
#
# Mount "tokenctl", team path "acme-consultancy": change both to yours (docs/team.md).
# `bao policy write tokenctl-support support.hcl`

# Finding the tokens.
path "tokenctl/data/acme-consultancy/meta" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/counter" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/names/*" {
  capabilities = ["read"]
}
path "tokenctl/data/acme-consultancy/codes/*" {
  capabilities = ["read"]
}

# The records and their history: changed by a renewal ("update": a page of records is
# never created by a renewal; "create" on history: its older events move to a key of
# their own).
path "tokenctl/data/acme-consultancy/records/*" {
  capabilities = ["read", "update"]
}
path "tokenctl/data/acme-consultancy/history/*" {
  capabilities = ["read", "create", "update"]
}

# Every definition's token secrets: read and replaced by a renewal; the client secrets
# are only read (set by the consultant: `definitions configure`).
path "tokenctl/data/acme-consultancy/secrets/*" {
  capabilities = ["read", "create", "update"]
}
path "tokenctl/data/acme-consultancy/clients/*" {
  capabilities = ["read"]
}

# The refresh leases: one tokenctl refreshes a token at a time, across machines.
path "tokenctl/data/acme-consultancy/leases/*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "tokenctl/metadata/acme-consultancy/leases/*" {
  capabilities = ["read", "delete"]
}

# The token calls counted against a definition's limits (Exact Online: 200 a day per app
# and user), shared by every machine: counted by each refresh and login.
path "tokenctl/data/acme-consultancy/budgets/*" {
  capabilities = ["create", "read", "update"]
}

# Listing the records (`store status` shows it; `doctor`).
path "tokenctl/metadata/acme-consultancy/records/" {
  capabilities = ["list"]
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
