"""The issue's "done when", through the documented API only; and the
OpenAPI document."""

from __future__ import annotations


def test_teacher_to_student_flow(clients):
    teacher, admin, student = clients["teacher"], clients["admin"], clients["student"]
    category = admin.post_json("/api/v1/categories", {"name": "人工智能"}, status=201).json
    course = teacher.post_json("/api/v1/courses", {
        "title": "深度学习基础", "description": "卷积神经网络与循环神经网络", "category_id": category["id"],
        "difficulty": "intermediate", "price": 0, "tags": ["AI"]}, status=201).json
    chapter = teacher.post_json(f"/api/v1/courses/{course['id']}/chapters", {"title": "第一章"}, status=201).json
    lesson = teacher.post_json(f"/api/v1/chapters/{chapter['id']}/lessons",
                               {"title": "感知机", "duration": 600}, status=201).json
    teacher.put_json(f"/api/v1/courses/{course['id']}", {"status": "reviewing"}, status=200)
    student.get(f"/api/v1/courses/{course['id']}", status=404)
    admin.put_json(f"/api/v1/courses/{course['id']}/review", {"status": "published"}, status=200)

    found = student.get("/api/v1/courses", params={"search": "神经网络"}).json["results"]
    assert [c["id"] for c in found] == [course["id"]]
    student.post_json(f"/api/v1/courses/{course['id']}/enroll", {}, status=201)
    student.post_json(f"/api/v1/lessons/{lesson['id']}/progress",
                      {"progress_percent": 95, "last_position": 570}, status=200)
    student.post_json(f"/api/v1/lessons/{lesson['id']}/notes", {"content": "感知机是线性分类器", "position": 120},
                      status=201)
    student.post_json(f"/api/v1/courses/{course['id']}/comments", {"content": "讲得清楚", "rating": 5}, status=201)

    mine = student.get("/api/v1/users/courses").json["results"]
    assert mine[0]["id"] == course["id"] and mine[0]["status"] == "completed"
    stats = student.get("/api/v1/users/learning/stats").json
    assert stats["completed_courses"] == 1 and stats["most_learned_category"] == "人工智能"
    detail = student.get(f"/api/v1/courses/{course['id']}").json
    assert detail["rating"] == 5 and detail["is_enrolled"] is True and detail["student_count"] == 1


def test_openapi_documents_the_courses_endpoints(testapp):
    paths = testapp.get("/api/openapi.json").json["paths"]
    for path, methods in {
        "/api/v1/categories": {"get", "post"}, "/api/v1/categories/{id}": {"put", "delete"},
        "/api/v1/courses": {"get", "post"}, "/api/v1/courses/{id}": {"get", "put", "delete"},
        "/api/v1/courses/{id}/review": {"put"}, "/api/v1/courses/{id}/chapters": {"get", "post"},
        "/api/v1/chapters/{id}/lessons": {"get", "post"}, "/api/v1/lessons/{id}": {"get", "put", "delete"},
        "/api/v1/lessons/{id}/progress": {"post"}, "/api/v1/users/courses": {"get"},
        "/api/v1/users/courses/{id}/progress": {"get"}, "/api/v1/lessons/{id}/notes": {"get", "post"},
        "/api/v1/users/courses/{id}/collect": {"post", "delete"}, "/api/v1/users/collections": {"get"},
        "/api/v1/users/learning/stats": {"get"}, "/api/v1/courses/{id}/comments": {"get", "post"},
    }.items():
        assert methods <= set(paths[path]), path
    assert "201" in paths["/api/v1/courses"]["post"]["responses"]
    assert "402" in paths["/api/v1/courses/{id}/enroll"]["post"]["responses"]
