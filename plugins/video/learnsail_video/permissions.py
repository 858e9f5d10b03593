"""The plugin's permission names and who holds them by default (admins
hold every permission anyway)."""

#: upload videos (single request, chunks, tus) and manage one's own upload tasks
UPLOAD = "video:video:upload"

#: list one's own videos, see their details and processing status
VIEW = "video:video:view"
#: edit, re-transcode and delete one's own videos (and those of one's courses)
EDIT = "video:video:edit"
#: see and manage every video (and preview it)
MANAGE_ANY = "video:video:manage_any"
#: play videos and report watching progress (access is the lesson's: free, trial, enrolled, member)
PLAY = "video:playback:use"
#: play statistics of one's own videos
STATS = "video:statistics:view"

DEFAULTS = {
    UPLOAD: ["teacher"],
    VIEW: ["teacher"],
    EDIT: ["teacher"],
    MANAGE_ANY: ["admin"],
    PLAY: ["student", "teacher"],
    STATS: ["teacher"],
}
