"""Demo data for ``learnsail init``: a category tree, two teachers, four
published courses with chapters and lessons, and a student enrolled in one
of them with some progress and a note.  Loaded once: nothing is added
when the demo's root category exists already."""

from __future__ import annotations

import secrets
from decimal import Decimal
import sqlalchemy as sa
from sqlalchemy.orm import Session

from learnsail.db import utcnow
from learnsail_courses import catalog, services
from learnsail_courses.models import PUBLISHED, Category, Enrolment, Note, Progress
from learnsail.identity.models import User

ROOT = "编程开发"

#: (title, description, child category, price, [(chapter, [(lesson, seconds, free)])])
COURSES = (
    ("Python 零基础入门", "从变量、循环到函数和模块，用 Python 写出第一个小程序。", "Python", "0",
     [("第一章 准备环境", [("安装 Python", 300, True), ("第一个程序", 420, False)]),
      ("第二章 基础语法", [("变量与类型", 600, False), ("条件与循环", 720, False)])]),
    ("Web 前端开发实战", "HTML、CSS 与 JavaScript：做一个响应式的个人主页。", "Web 前端", "0",
     [("第一章 HTML", [("标签与结构", 480, True), ("表单", 540, False)]),
      ("第二章 CSS", [("选择器", 500, False), ("Flex 布局", 660, False)])]),
    ("机器学习入门", "线性回归、分类与神经网络的直观理解与实践。", "机器学习", "199.00",
     [("第一章 概念", [("什么是机器学习", 600, True), ("监督学习", 780, False)]),
      ("第二章 模型", [("线性回归", 900, False), ("神经网络初探", 960, False)])]),
    ("数据分析与可视化", "用 pandas 清洗数据，用图表讲清楚数据里的故事。", "机器学习", "0",
     [("第一章 pandas", [("DataFrame", 640, True), ("清洗数据", 700, False)])]),
)


def _user(session: Session, username: str, role: str, password: str) -> User:
    from learnsail.identity.services import create_user

    user = session.scalar(sa.select(User).where(User.username == username))
    return user or create_user(session, username=username, password=password, role=role,
                               email=f"{username}@demo.learnsail.invalid")


def load(session: Session) -> str | None:
    if session.scalar(sa.select(Category.id).where(Category.name == ROOT)) is not None:
        return None
    password = secrets.token_urlsafe(9)
    teachers = [_user(session, "demo_teacher_li", "teacher", password),
                _user(session, "demo_teacher_wang", "teacher", password)]
    student = _user(session, "demo_student", "student", password)
    session.flush()
    root = catalog.create_category(session, name=ROOT, description="编程与软件开发", sort_order=1)
    data = catalog.create_category(session, name="数据科学", description="数据分析与人工智能", sort_order=2)
    children = {
        "Python": catalog.create_category(session, name="Python", parent_id=root.id, sort_order=1),
        "Web 前端": catalog.create_category(session, name="Web 前端", parent_id=root.id, sort_order=2),
        "机器学习": catalog.create_category(session, name="机器学习", parent_id=data.id, sort_order=1),
    }
    now = utcnow()
    first_course = first_lessons = None
    for n, (title, description, category, price, chapters) in enumerate(COURSES):
        course = services.create_course(session, teachers[n % 2].id, {
            "title": title, "description": description, "category_id": children[category].id,
            "difficulty": "beginner" if n % 2 == 0 else "intermediate", "price": Decimal(price),
            "tags": [category, "入门" if n % 2 == 0 else "实战"]})
        lessons = []
        for chapter_title, lesson_rows in chapters:
            chapter = services.create_chapter(session, course, {"title": chapter_title})
            for lesson_title, seconds, free in lesson_rows:
                lessons.append(services.create_lesson(session, chapter, course, {
                    "title": lesson_title, "duration": seconds, "is_free": free}))
        course.status, course.published_at, course.reviewed_at = PUBLISHED, now, now
        if first_course is None:
            first_course, first_lessons = course, lessons
    # the student: enrolled in the first course, two lessons done, one started
    session.add(Enrolment(user_id=student.id, course_id=first_course.id, kind="free",
                          completed_lessons=2, progress_percent=Decimal("50.00"), last_accessed_at=now))
    first_course.student_count = 1
    for lesson, percent in zip(first_lessons[:3], (100, 100, 40), strict=True):
        session.add(Progress(user_id=student.id, lesson_id=lesson.id, course_id=first_course.id,
                             progress_percent=Decimal(percent), last_position=lesson.duration * percent // 100,
                             is_completed=percent == 100, completion_date=now if percent == 100 else None,
                             learned_seconds=lesson.duration * percent // 100))
    session.add(Note(user_id=student.id, lesson_id=first_lessons[1].id, content="print() 可以输出多个值", position=95))
    session.flush()
    return (f"{len(COURSES)} published courses in {len(children) + 2} categories; accounts demo_teacher_li, "
            f"demo_teacher_wang and demo_student with password {password!r} (shown once)")
