"""The plugin's permission names and who holds them by default (admins
hold every permission anyway)."""

#: upload videos (single request, chunks, tus) and manage one's own upload tasks
UPLOAD = "video:video:upload"

DEFAULTS = {
    UPLOAD: ["teacher"],
}
