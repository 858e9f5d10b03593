"""The plugin loads, migrates and declares what it says."""

from __future__ import annotations


def test_the_plugin_is_enabled_with_courses(app):
    plugins = app.registry["learnsail.plugins"]
    assert "video" in plugins.order and plugins.order.index("courses") < plugins.order.index("video")


def test_the_tables_are_created_by_the_video_branch(app, dbsession):
    import sqlalchemy as sa

    tables = set(sa.inspect(dbsession.connection()).get_table_names())
    assert {"video_videos", "video_upload_tasks", "video_upload_parts"} <= tables


def test_permissions_settings_and_periodic_tasks_are_declared(app):
    settings = app.registry.settings
    assert settings["learnsail.video.upload_ttl_hours"] == 24
    assert settings["learnsail.video.max_upload_size"] == 8 * 1024 ** 3
    assert app.registry["learnsail.periodic"]["video.expire_uploads"]["task"] == "video.expire_uploads"
