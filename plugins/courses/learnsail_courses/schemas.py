"""What the API accepts (input schemas) and answers (documentation
schemas), marshmallow 4.  Input schemas derive from the core's bases, so an
unknown body field is a VALIDATION_ERROR and unknown query parameters are
ignored."""

from __future__ import annotations

from marshmallow import fields, validate, validates_schema, ValidationError

from learnsail.api import Schema
from learnsail.api.validation import Id, QuerySchema, UTCInstant
from learnsail_courses.models import COURSE_TYPES, DIFFICULTIES, LESSON_TYPES, TAG_TYPES

COLOUR = validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="A colour is #rrggbb.")
MAX_POSITION = 10 * 24 * 3600  # ten hours of video, in seconds, is plenty


def Page(**kwargs):
    return fields.Integer(validate=validate.Range(min=1), metadata={"description": "Page number (1-based)."},
                          **kwargs)


def PageSize(**kwargs):
    return fields.Integer(validate=validate.Range(min=1),
                          metadata={"description": "Items per page (default 20, capped at 100)."}, **kwargs)


class IdPath(Schema):
    id = Id(required=True)


# --- categories ------------------------------------------------------------------

class CategoryListQuery(QuerySchema):
    parent_id = Id(metadata={"description": "List the children of this category (default: the roots)."})
    page = Page()
    page_size = PageSize()
    include_inactive = fields.Boolean(metadata={"description": "Also inactive categories (category managers)."})


class CategoryCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    parent_id = Id(load_default=None, allow_none=True)
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))
    sort_order = fields.Integer(load_default=0, validate=validate.Range(min=-1_000_000, max=1_000_000))
    is_active = fields.Boolean(load_default=True)


class CategoryUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=50))
    parent_id = Id(allow_none=True)
    description = fields.String(allow_none=True, validate=validate.Length(max=10_000))
    sort_order = fields.Integer(validate=validate.Range(min=-1_000_000, max=1_000_000))
    is_active = fields.Boolean()


class CategorySchema(Schema):
    id = fields.Integer()
    name = fields.String()
    parent_id = fields.Integer(allow_none=True)
    description = fields.String(allow_none=True)
    sort_order = fields.Integer()
    level = fields.Integer()
    path = fields.String()
    is_active = fields.Boolean()
    course_count = fields.Integer(metadata={"description": "Published courses here and in sub-categories."})
    children = fields.List(fields.Dict(), metadata={"description": "Sub-categories, the same shape."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


# --- tags ------------------------------------------------------------------------

class TagListQuery(QuerySchema):
    type = fields.String(validate=validate.OneOf(TAG_TYPES))


class TagInput(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    type = fields.String(load_default="general", validate=validate.OneOf(TAG_TYPES))
    colour = fields.String(load_default=None, allow_none=True, validate=COLOUR)


class TagBatchSchema(Schema):
    tags = fields.List(fields.Nested(TagInput), required=True, validate=validate.Length(min=1, max=100))


class TagUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=50))
    type = fields.String(validate=validate.OneOf(TAG_TYPES))
    colour = fields.String(allow_none=True, validate=COLOUR)


class TagDeleteQuery(QuerySchema):
    ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=100))


class TagSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    type = fields.String()
    colour = fields.String(allow_none=True)
    course_count = fields.Integer(metadata={"description": "Published courses carrying it (in lists)."})


class TagListSchema(Schema):
    results = fields.List(fields.Nested(TagSchema))


# --- courses ---------------------------------------------------------------------

_PRICE = dict(as_string=False, places=2, validate=validate.Range(min=0, max=99_999_999))
_TAGS = dict(validate=validate.Length(max=20))


class CourseCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50_000))
    cover_image_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    category_id = Id(load_default=None, allow_none=True)
    difficulty = fields.String(load_default="beginner", validate=validate.OneOf(DIFFICULTIES))
    price = fields.Decimal(load_default=0, **_PRICE)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=50)), load_default=list, **_TAGS)
    course_type = fields.String(load_default="video", validate=validate.OneOf(COURSE_TYPES))
    language = fields.String(load_default="中文", validate=validate.Length(min=1, max=50))
    completion_threshold = fields.Integer(load_default=None, allow_none=True,
                                          validate=validate.Range(min=1, max=100))
    is_member_only = fields.Boolean(load_default=False,
                                    metadata={"description": "Members study it without buying it."})


class CourseUpdateSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=50_000))
    cover_image_url = fields.String(allow_none=True, validate=validate.Length(max=255))
    category_id = Id(allow_none=True)
    difficulty = fields.String(validate=validate.OneOf(DIFFICULTIES))
    price = fields.Decimal(**_PRICE)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=50)), **_TAGS)
    course_type = fields.String(validate=validate.OneOf(COURSE_TYPES))
    language = fields.String(validate=validate.Length(min=1, max=50))
    completion_threshold = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100))
    is_member_only = fields.Boolean()
    status = fields.String(validate=validate.OneOf(("draft", "reviewing", "archived")),
                           metadata={"description": "reviewing submits a draft or rejected course for review; "
                                                    "draft withdraws it (or unpublishes a published one); "
                                                    "archived archives a published one."})


class ReviewSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("published", "rejected")))
    review_comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))

    @validates_schema
    def _reason_for_rejection(self, data, **kwargs):
        if data.get("status") == "rejected" and not (data.get("review_comment") or "").strip():
            raise ValidationError("Say why the course is rejected.", "review_comment")


class CourseWriteSchema(Schema):
    """The answer of POST and PUT /courses (000)."""
    id = fields.Integer()
    title = fields.String()
    description = fields.String(allow_none=True)
    cover_image_url = fields.String(allow_none=True)
    teacher_id = fields.Integer()
    category_id = fields.Integer(allow_none=True)
    difficulty = fields.String()
    price = fields.Float()
    tags = fields.List(fields.String())
    course_type = fields.String()
    is_free = fields.Boolean()
    language = fields.String(allow_none=True)
    completion_threshold = fields.Integer(allow_none=True)
    is_member_only = fields.Boolean()
    duration = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    status = fields.String()


class ReviewResultSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    status = fields.String()
    review_comment = fields.String(allow_none=True)
    reviewed_at = fields.DateTime()
    reviewer_id = fields.Integer()


class CourseListQuery(QuerySchema):
    page = Page()
    page_size = PageSize()
    category_id = Id(metadata={"description": "The category and its sub-categories."})
    difficulty = fields.String(validate=validate.OneOf(DIFFICULTIES))
    price_min = fields.Decimal(as_string=False, validate=validate.Range(min=0, max=99_999_999))
    price_max = fields.Decimal(as_string=False, validate=validate.Range(min=0, max=99_999_999))
    search = fields.String(validate=validate.Length(min=1, max=100))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=50)), validate=validate.Length(max=10),
                       metadata={"description": "Courses carrying all these tags (tags=a,b or tags=a&tags=b)."})
    sort = fields.String(validate=validate.OneOf(("newest", "popular", "rating", "price", "-price")),
                         metadata={"description": "newest (default), popular, rating, price (low first), "
                                                  "-price (high first)."})
    status = fields.String(validate=validate.OneOf(("draft", "reviewing", "published", "rejected", "archived")),
                           metadata={"description": "Course managers only (default published)."})
    teacher_id = Id(metadata={"description": "One teacher's courses; a teacher sees all of their own."})
    course_type = fields.String(validate=validate.OneOf(COURSE_TYPES))
    is_free = fields.Boolean()

    @validates_schema
    def _price_range(self, data, **kwargs):
        if data.get("price_min") is not None and data.get("price_max") is not None \
                and data["price_min"] > data["price_max"]:
            raise ValidationError("price_min is above price_max.", "price_min")


class CourseSummarySchema(Schema):
    id = fields.Integer()
    title = fields.String()
    cover_image_url = fields.String(allow_none=True)
    teacher_name = fields.String()
    teacher_id = fields.Integer()
    price = fields.Float()
    rating = fields.Float()
    rating_count = fields.Integer()
    student_count = fields.Integer()
    difficulty = fields.String()
    status = fields.String()
    category_id = fields.Integer(allow_none=True)
    course_type = fields.String()
    is_free = fields.Boolean()
    is_member_only = fields.Boolean()
    duration = fields.Integer(metadata={"description": "Minutes."})
    tags = fields.List(fields.String())


class HotQuery(QuerySchema):
    limit = fields.Integer(validate=validate.Range(min=1, max=50))


class CourseDetailSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String(allow_none=True)
    cover_image_url = fields.String(allow_none=True)
    teacher = fields.Dict(metadata={"description": "{id, name, avatar_url, bio}"})
    category = fields.Dict(allow_none=True, metadata={"description": "{id, name}"})
    difficulty = fields.String()
    price = fields.Float()
    is_free = fields.Boolean()
    is_member_only = fields.Boolean()
    course_type = fields.String()
    language = fields.String(allow_none=True)
    duration = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    status = fields.String()
    student_count = fields.Integer()
    rating = fields.Float()
    rating_count = fields.Integer()
    tags = fields.List(fields.String())
    is_enrolled = fields.Boolean()
    enrollment_type = fields.String(allow_none=True, metadata={"description": "The caller's enrolment kind: free, "
                                                                              "paid, trial or member (null when "
                                                                              "not enrolled)."})
    valid_until = fields.DateTime(allow_none=True, metadata={"description": "When the caller's enrolment ends."})
    progress = fields.Dict(allow_none=True, metadata={"description": "The caller's progress when enrolled."})


# --- chapters and lessons ---------------------------------------------------------

class ChapterCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))
    sort_order = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=100_000))
    is_free = fields.Boolean(load_default=False)


class ChapterUpdateSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=10_000))
    sort_order = fields.Integer(validate=validate.Range(min=0, max=100_000))
    is_free = fields.Boolean()


class LessonCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))
    video_id = Id(load_default=None, allow_none=True)
    duration = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_POSITION))
    sort_order = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=100_000))
    is_free = fields.Boolean(load_default=False)
    is_trial = fields.Boolean(load_default=False)
    resource_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    type = fields.String(load_default="video", validate=validate.OneOf(LESSON_TYPES))


class LessonUpdateSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=10_000))
    video_id = Id(allow_none=True)
    duration = fields.Integer(validate=validate.Range(min=0, max=MAX_POSITION))
    sort_order = fields.Integer(validate=validate.Range(min=0, max=100_000))
    is_free = fields.Boolean()
    is_trial = fields.Boolean()
    resource_url = fields.String(allow_none=True, validate=validate.Length(max=255))
    type = fields.String(validate=validate.OneOf(LESSON_TYPES))
    chapter_id = Id(metadata={"description": "Move the lesson to another chapter of the same course."})


class ReorderSchema(Schema):
    ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=1000),
                      metadata={"description": "Every id, in the new order."})


class LessonBriefSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    duration = fields.Integer()
    is_free = fields.Boolean()
    is_trial = fields.Boolean()
    type = fields.String()
    sort_order = fields.Integer()


class ChapterSchema(Schema):
    id = fields.Integer()
    course_id = fields.Integer()
    title = fields.String()
    description = fields.String(allow_none=True)
    sort_order = fields.Integer()
    is_free = fields.Boolean()
    lessons = fields.List(fields.Nested(LessonBriefSchema))


class ChapterListSchema(Schema):
    results = fields.List(fields.Nested(ChapterSchema))


class LessonSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String(allow_none=True)
    video_id = fields.Integer(allow_none=True)
    duration = fields.Integer()
    sort_order = fields.Integer()
    is_free = fields.Boolean()
    is_trial = fields.Boolean()
    resource_url = fields.String(allow_none=True)
    type = fields.String()
    chapter_id = fields.Integer()
    course_id = fields.Integer()
    locked = fields.Boolean(metadata={"description": "GET /lessons/{id}: the caller may not study it "
                                                     "(resource_url is null then)."})
    progress = fields.Dict(allow_none=True)


# --- enrolment and learning -------------------------------------------------------

class PageQuery(QuerySchema):
    page = Page()
    page_size = PageSize()


class EnrolSchema(Schema):
    enrollment_type = fields.String(load_default="free", validate=validate.OneOf(("free", "trial")),
                                    metadata={"description": "free (default: a free course, or a member-only "
                                                             "course for members) or trial (a limited window)."})


class EnrolmentSchema(Schema):
    id = fields.Integer()
    course_id = fields.Integer()
    user_id = fields.Integer()
    kind = fields.String(metadata={"description": "free, paid, trial or member"})
    status = fields.String(metadata={"description": "active or ended"})
    valid_from = fields.DateTime(allow_none=True)
    valid_until = fields.DateTime(allow_none=True)
    progress_percent = fields.Float()
    created_at = fields.DateTime()


class StudentsQuery(QuerySchema):
    page = Page()
    page_size = PageSize()
    status = fields.String(validate=validate.OneOf(("active", "ended")))


class StudentPath(Schema):
    id = Id(required=True)
    user_id = Id(required=True)


class StudentSchema(EnrolmentSchema):
    username = fields.String()
    avatar_url = fields.String(allow_none=True)
    completed_lessons = fields.Integer()
    last_accessed = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    state = fields.String(metadata={"description": "enrolled, in_progress or completed"})


class ValiditySchema(Schema):
    valid_from = UTCInstant(allow_none=True)
    valid_until = UTCInstant(allow_none=True)


class ProgressReportSchema(Schema):
    progress_percent = fields.Decimal(required=True, as_string=False, places=2,
                                      validate=validate.Range(min=0, max=100))
    last_position = fields.Integer(load_default=None, allow_none=True,
                                   validate=validate.Range(min=0, max=MAX_POSITION),
                                   metadata={"description": "Seconds into the lesson: where to resume."})
    is_completed = fields.Boolean(load_default=None, allow_none=True)


class ProgressSchema(Schema):
    id = fields.Integer()
    lesson_id = fields.Integer()
    user_id = fields.Integer()
    progress_percent = fields.Float()
    last_position = fields.Integer()
    is_completed = fields.Boolean()
    updated_at = fields.DateTime()


class MyCoursesQuery(QuerySchema):
    page = Page()
    page_size = PageSize()
    status = fields.String(validate=validate.OneOf(("enrolled", "in_progress", "completed")))


class MyCourseSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    cover_image_url = fields.String(allow_none=True)
    teacher_name = fields.String()
    progress_percent = fields.Float()
    last_accessed = fields.DateTime(allow_none=True)
    status = fields.String(metadata={"description": "enrolled (not started), in_progress or completed"})
    kind = fields.String(metadata={"description": "free, paid, trial or member"})
    enrolled_at = fields.DateTime()
    valid_until = fields.DateTime(allow_none=True)


class ChapterProgressSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    total_lessons = fields.Integer()
    completed_lessons = fields.Integer()
    progress_percent = fields.Float()


class CourseProgressSchema(Schema):
    course_id = fields.Integer()
    total_lessons = fields.Integer()
    completed_lessons = fields.Integer()
    progress_percent = fields.Float()
    last_accessed = fields.DateTime(allow_none=True)
    chapters = fields.List(fields.Nested(ChapterProgressSchema))


class NoteCreateSchema(Schema):
    content = fields.String(required=True, validate=validate.Length(min=1, max=20_000))
    position = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=MAX_POSITION))


class NoteUpdateSchema(Schema):
    content = fields.String(validate=validate.Length(min=1, max=20_000))
    position = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=MAX_POSITION))


class NoteSchema(Schema):
    id = fields.Integer()
    content = fields.String()
    position = fields.Integer(allow_none=True)
    lesson_id = fields.Integer()
    user_id = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CollectedSchema(Schema):
    message = fields.String()
    course_id = fields.Integer()
    user_id = fields.Integer()


class CollectionItemSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    cover_image_url = fields.String(allow_none=True)
    teacher_name = fields.String()
    price = fields.Float()
    rating = fields.Float()
    collected_at = fields.DateTime()


# --- comments -------------------------------------------------------------------

class CommentListQuery(QuerySchema):
    page = Page()
    page_size = PageSize()
    sort = fields.String(validate=validate.OneOf(("newest", "oldest", "rating", "likes")),
                         metadata={"description": "newest (default), oldest, rating, likes."})
    include_hidden = fields.Boolean(metadata={"description": "Comment moderators: also hidden and unapproved."})


class CommentCreateSchema(Schema):
    content = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    rating = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=5),
                            metadata={"description": "1-5 stars; enrolled students, once per course."})
    parent_id = Id(load_default=None, allow_none=True, metadata={"description": "Reply to this comment."})
    lesson_id = Id(load_default=None, allow_none=True, metadata={"description": "The lesson spoken of."})


class ModerationSchema(Schema):
    is_approved = fields.Boolean()
    is_hidden = fields.Boolean()


class CommentUserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    avatar_url = fields.String(allow_none=True)


class ReplySchema(Schema):
    id = fields.Integer()
    parent_id = fields.Integer()
    content = fields.String()
    created_at = fields.DateTime()
    user = fields.Nested(CommentUserSchema)
    like_count = fields.Integer()
    liked = fields.Boolean()
    is_approved = fields.Boolean()
    is_hidden = fields.Boolean()


class CommentSchema(Schema):
    id = fields.Integer()
    content = fields.String()
    rating = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    user = fields.Nested(CommentUserSchema)
    replies = fields.List(fields.Nested(ReplySchema))
    like_count = fields.Integer()
    liked = fields.Boolean(metadata={"description": "Whether the caller liked it."})
    is_approved = fields.Boolean()
    is_hidden = fields.Boolean()


class CommentCreatedSchema(Schema):
    id = fields.Integer()
    content = fields.String()
    rating = fields.Integer(allow_none=True)
    course_id = fields.Integer()
    user_id = fields.Integer()
    parent_id = fields.Integer(allow_none=True)
    is_approved = fields.Boolean()
    is_hidden = fields.Boolean()
    created_at = fields.DateTime()


class LikeSchema(Schema):
    id = fields.Integer()
    like_count = fields.Integer()
    liked = fields.Boolean()


class StatsQuery(QuerySchema):
    days = fields.Integer(validate=validate.Range(min=1, max=90),
                          metadata={"description": "Days of learning_trends (default 7)."})


class TrendSchema(Schema):
    date = fields.String()
    hours = fields.Float()


class StatsSchema(Schema):
    total_learning_hours = fields.Float()
    completed_courses = fields.Integer()
    in_progress_courses = fields.Integer()
    avg_completion_rate = fields.Float()
    most_learned_category = fields.String(allow_none=True)
    learning_trends = fields.List(fields.Nested(TrendSchema))


class LessonStatsSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    started = fields.Integer()
    completed = fields.Integer()


class CourseStatsSchema(Schema):
    course_id = fields.Integer()
    status = fields.String()
    student_count = fields.Integer()
    trial_count = fields.Integer()
    ended_count = fields.Integer()
    completed_count = fields.Integer()
    avg_progress_percent = fields.Float()
    total_learning_hours = fields.Float()
    rating = fields.Float()
    rating_count = fields.Integer()
    comment_count = fields.Integer()
    lessons = fields.List(fields.Nested(LessonStatsSchema))
