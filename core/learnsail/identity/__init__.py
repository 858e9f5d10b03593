"""Identity: accounts, roles, password hashing, JWT and the security policy."""


def check_settings(settings):
    """Refuse to start with identity settings that would fail every request."""
    from learnsail.identity import tokens
    from learnsail.settings import SettingError

    try:
        tokens._keys(settings)
    except (tokens.TokenError, OSError) as exc:
        raise SettingError(f"learnsail.jwt_algorithm / key settings: {exc}") from None
    length = int(settings.get("learnsail.code_length", 6))
    if not 4 <= length <= 10:
        raise SettingError(f"learnsail.code_length must be from 4 to 10, not {length}")


def includeme(config):
    check_settings(config.get_settings())
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
