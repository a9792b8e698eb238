"""Response wrapping with hvac, the Python Vault client, as its docs show:
`wrap_ttl` on a read, a write and a token creation, `client.sys.unwrap` by a
third party and by the wrapping token itself."""

import os

import hvac
import hvac.exceptions

address, root_token = os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"]
users_file = os.path.join(os.environ["TARGET_DIR"], "htpasswd")
client = hvac.Client(url=address, token=root_token)


def users():
    try:
        with open(users_file) as f:
            return [line.split(":", 1)[0] for line in f if ":" in line]
    except FileNotFoundError:
        return []


client.sys.enable_secrets_engine(backend_type="htpasswd", path="web")
client.write("sys/grants/web", directory=os.environ["TARGET_DIR"])
client.write("web/config/site", file="htpasswd", bcrypt_cost=4, allowed_roles="*")
client.write("web/roles/reader", db_name="site", default_ttl="10m")

# A credential read wrapped: a token instead of the data.
wrapped = client.read("web/creds/reader", wrap_ttl="2m")
assert wrapped["data"] is None, wrapped
info = wrapped["wrap_info"]
assert info["ttl"] == 120 and info["creation_path"] == "web/creds/reader", info
assert len(users()) == 1, users()

# Unwrapped by a third party: the credential, once.
unwrapped = client.sys.unwrap(token=info["token"])
assert unwrapped["data"]["username"] in users(), unwrapped
assert unwrapped["lease_id"].startswith("web/creds/reader/"), unwrapped
try:
    client.sys.unwrap(token=info["token"])
    raise AssertionError("a wrapping token unwrapped twice")
except hvac.exceptions.InvalidRequest as error:
    assert "wrapping token is not valid or does not exist" in str(error), error

# Arbitrary data wrapped with the adapter's wrap_ttl, unwrapped by a client
# holding only the wrapping token.
response = client.adapter.post("/v1/sys/wrapping/wrap", json={"k": "v"}, wrap_ttl="60s")
holder = hvac.Client(url=address, token=response["wrap_info"]["token"])
assert holder.sys.unwrap()["data"] == {"k": "v"}
try:
    holder.sys.unwrap()
    raise AssertionError("a wrapping token unwrapped itself twice")
except hvac.exceptions.InvalidRequest:
    pass

# A token created wrapped.
created = client.auth.token.create(policies=["default"], ttl="1h", wrap_ttl="30s")
assert created["auth"] is None, created
child = client.sys.unwrap(token=created["wrap_info"]["token"])["auth"]
assert child["accessor"] == created["wrap_info"]["wrapped_accessor"], (child, created)
assert hvac.Client(url=address, token=child["client_token"]).is_authenticated()

print("hvac: wrapping worked")
