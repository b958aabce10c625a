# tokenctl team store: the consultant. Everything on the team's inventory: add, log in,
# renew, rename, delete, read every token's secrets, configure client secrets, and
# `tokenctl store copy` into it.
#
# Mount "tokenctl" (a KV version 2 secrets engine), team path "acme-consultancy": change
# both to yours (docs/team.md). `bao policy write tokenctl-consultant consultant.hcl`

# Every key of the inventory: records, names, codes, history, secrets, client secrets,
# refresh leases, the counter and the meta.
path "tokenctl/data/acme-consultancy/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Listing the folders (`doctor`, `store copy`) and removing keys for good (`delete`,
# a rename's old name, a finished refresh lease).
path "tokenctl/metadata/acme-consultancy/*" {
  capabilities = ["read", "list", "delete"]
}
