"""Discovery, selection, ordering and validation of plugins."""

from __future__ import annotations

import types

import pytest

from learnsail import hookimpl, plugins
from learnsail.plugins import Plugin, PluginError, PluginInfo


def make_plugin(name, requires=(), uses=(), core="", **hooks):
    module = types.ModuleType(f"fake_{name}")
    module.PLUGIN = PluginInfo(name=name, version="1.0", requires=tuple(requires), uses=tuple(uses),
                               core=core, migrations=None)
    for hook_name, func in hooks.items():
        setattr(module, hook_name, hookimpl(func))
    return Plugin(info=module.PLUGIN, module=module)


def installed(*items):
    return {p.name: p for p in items}


def test_dependency_order_puts_requirements_first():
    found = installed(make_plugin("video", requires=["courses"]), make_plugin("courses"),
                      make_plugin("live", uses=["courses"]), make_plugin("payments"))
    order = plugins.resolve(found, ["*"])
    assert order.index("courses") < order.index("video")
    assert order.index("courses") < order.index("live")
    assert sorted(order) == ["courses", "live", "payments", "video"]


def test_soft_dependency_may_be_absent():
    found = installed(make_plugin("live", uses=["courses"]))
    assert plugins.resolve(found, ["live"]) == ["live"]


def test_selection_by_name():
    found = installed(make_plugin("courses"), make_plugin("payments"))
    assert plugins.resolve(found, ["payments"]) == ["payments"]
    assert plugins.resolve(found, ["*"]) == ["courses", "payments"]
    assert plugins.resolve(found, []) == []  # empty: the core alone
    assert plugins.resolve(found, ["core"]) == []


def test_unknown_plugin_named_in_setting():
    with pytest.raises(PluginError, match=r"learnsail.plugins names exams, which is not installed"):
        plugins.resolve(installed(make_plugin("courses")), ["exams"])


def test_missing_hard_requirement_names_plugin_and_fix():
    with pytest.raises(PluginError) as info:
        plugins.resolve(installed(make_plugin("video", requires=["courses"])), ["*"])
    assert "'video' requires plugin 'courses', which is not installed" in str(info.value)
    assert "pip install learnsail-courses" in str(info.value)


def test_disabled_hard_requirement():
    found = installed(make_plugin("video", requires=["courses"]), make_plugin("courses"))
    with pytest.raises(PluginError, match=r"requires plugin 'courses', which is disabled: add 'courses'"):
        plugins.resolve(found, ["video"])


def test_cycle_is_reported():
    found = installed(make_plugin("a", requires=["b"]), make_plugin("b", requires=["a"]))
    with pytest.raises(PluginError, match=r"cycle: a -> b -> a"):
        plugins.resolve(found, ["*"])


def test_incompatible_core_version():
    with pytest.raises(PluginError, match=r"supports learnsail core >=9.0, but this is core"):
        plugins.resolve(installed(make_plugin("future", core=">=9.0")), ["*"])
    with pytest.raises(PluginError, match=r"invalid core version range"):
        plugins.resolve(installed(make_plugin("odd", core="banana")), ["*"])
    assert plugins.resolve(installed(make_plugin("ok", core=">=0.1,<1")), ["*"]) == ["ok"]


def test_misspelled_hook_fails_loudly():
    bad = make_plugin("typo", learnsail_includme=lambda config: None)
    with pytest.raises(PluginError, match=r"learnsail_includme.*check its spelling"):
        plugins.load(["*"], installed=installed(bad))


def test_plugin_publishes_its_own_hookspecs():
    specs = types.ModuleType("courses_hookspecs")
    from learnsail.hookspecs import hookspec

    def learnsail_course_published(course_id):
        """A course was published."""

    specs.learnsail_course_published = hookspec(learnsail_course_published)
    courses_module = make_plugin("courses").module
    courses_module.HOOKSPECS = specs  # what a plugin module declares
    courses = Plugin(info=courses_module.PLUGIN, module=courses_module)
    seen = []
    listener = make_plugin("notify", requires=["courses"],
                           learnsail_course_published=lambda course_id: seen.append(course_id))
    loaded = plugins.load(["*"], installed=installed(courses, listener))
    loaded.manager.hook.learnsail_course_published(course_id=7)
    assert seen == [7]
    # without the publisher, implementing its hook is an error, not silence
    with pytest.raises(PluginError):
        plugins.resolve(installed(make_plugin("notify", requires=["courses"])), ["*"])


def test_entry_point_discovery_rejects_bad_plugins(monkeypatch):
    class EP:
        def __init__(self, name, module):
            self.name, self.value, self.dist, self._module = name, f"{name}:plugin", None, module

        def load(self):
            if isinstance(self._module, Exception):
                raise self._module
            return self._module

    no_info = types.ModuleType("no_info")
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: [EP("x", no_info)])
    with pytest.raises(PluginError, match="has no PLUGIN"):
        plugins.discover()
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                        lambda group: [EP("y", ImportError("boom"))])
    with pytest.raises(PluginError, match=r"plugin 'y' .* failed to import"):
        plugins.discover()
    wrong = make_plugin("other").module
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: [EP("z", wrong)])
    with pytest.raises(PluginError, match="make the entry-point name and PluginInfo.name the same"):
        plugins.discover()


def test_manager_is_per_app_not_global(learnsail_settings):
    from learnsail.app import configure
    from learnsail.testing import isolated_environ

    first = configure(learnsail_settings, environ=isolated_environ()).registry["learnsail.pm"]
    second = configure(learnsail_settings, environ=isolated_environ()).registry["learnsail.pm"]
    assert first is not second


def test_includeme_runs_in_dependency_order(learnsail_settings):
    from learnsail.app import configure
    from learnsail.testing import isolated_environ

    calls = []
    found = installed(
        make_plugin("video", requires=["courses"], learnsail_includeme=lambda config: calls.append("video")),
        make_plugin("courses", learnsail_includeme=lambda config: calls.append("courses")),
    )
    settings = dict(learnsail_settings, **{"learnsail.plugins": "*"})
    configure(settings, environ=isolated_environ(), installed=found)
    assert calls == ["courses", "video"]


def test_env_var_selects_plugins(learnsail_settings):
    from learnsail.app import load_settings

    found = installed(make_plugin("courses"), make_plugin("payments"))
    env = {"LEARNSAIL_PLUGINS": "payments"}
    settings, loaded = load_settings(learnsail_settings, environ=env, installed=found)
    assert loaded.order == ["payments"] and settings["learnsail.plugins"] == ["payments"]
    assert found["courses"].enabled is False
