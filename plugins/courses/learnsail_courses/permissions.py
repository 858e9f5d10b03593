"""The plugin's permission names and who holds them by default (admins
hold every permission anyway)."""

CATEGORY_MANAGE = "courses:category:manage"
TAG_MANAGE = "courses:tag:manage"
COURSE_CREATE = "courses:course:create"
#: edit a course: teachers their own (owner rule), holders of COURSE_EDIT_ANY every one
COURSE_EDIT = "courses:course:edit"
COURSE_EDIT_ANY = "courses:course:edit_any"
#: see drafts, courses in review and archived courses of others
COURSE_VIEW_ANY = "courses:course:view_any"
COURSE_REVIEW = "courses:course:review"
ENROL = "courses:enrolment:create"
#: a teacher's student list of their own courses; holders of STUDENTS_VIEW_ANY any course's
STUDENTS_VIEW = "courses:enrolment:view"
STUDENTS_VIEW_ANY = "courses:enrolment:view_any"
LEARN = "courses:learning:use"
COMMENT = "courses:comment:create"
COMMENT_MODERATE = "courses:comment:moderate"

LEARNERS = ["student", "teacher"]

DEFAULTS = {
    CATEGORY_MANAGE: ["admin"],
    TAG_MANAGE: ["admin"],
    COURSE_CREATE: ["teacher"],
    COURSE_EDIT: ["teacher"],
    COURSE_EDIT_ANY: ["admin"],
    COURSE_VIEW_ANY: ["admin"],
    COURSE_REVIEW: ["admin"],
    ENROL: LEARNERS,
    STUDENTS_VIEW: ["teacher"],
    STUDENTS_VIEW_ANY: ["admin"],
    LEARN: LEARNERS,
    COMMENT: LEARNERS,
    COMMENT_MODERATE: ["admin"],
}
