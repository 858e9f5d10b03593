"""Identity: accounts, roles, password hashing, JWT and the security policy."""


def includeme(config):
    config.include("learnsail.identity.policy")
    # fixed paths (/users/me, /users/sms/...) before any /users/{id} route
    config.include("learnsail.identity.privacy_views")
    config.include("learnsail.identity.code_views")
    config.include("learnsail.identity.admin_views")
    # before views: /users/identities must win over any /users/{id} route
    config.include("learnsail.identity.rbac_views")
    config.include("learnsail.identity.menus")
    config.include("learnsail.identity.audit_views")
    config.include("learnsail.identity.views")
    config.include("learnsail.identity.oauth_views")
