"""Identity: accounts, roles, password hashing, JWT and the security policy."""


def includeme(config):
    config.include("learnsail.identity.policy")
    config.include("learnsail.identity.views")
    config.include("learnsail.identity.oauth_views")
