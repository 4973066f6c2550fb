"""The one generic registry: registration, lazy discovery, and one error that lists the choices."""

from __future__ import annotations

import sys

import pytest

from vitsearch.space.registry import Registry, UnknownNameError


def test_register_get_and_unknown_name_lists_choices():
    reg: Registry[object] = Registry("widget", tag="NAME")

    @reg.register("b")
    class B:
        pass

    @reg.register()
    def a():
        return 1

    assert reg.get("b") is B and B.NAME == "b" and reg["a"] is a and reg.names() == ["a", "b"]
    assert "a" in reg and "c" not in reg and list(reg) == ["a", "b"]
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'c' \(choose from a, b\)$") as err:
        reg.get("c")
    assert isinstance(err.value, ValueError) and isinstance(err.value, KeyError)  # callers of either still work
    assert (err.value.kind, err.value.name, err.value.choices) == ("widget", "c", ["a", "b"])
    with pytest.raises(UnknownNameError):
        reg.get(["not", "hashable"])  # a malformed file's value, not a crash
    with pytest.raises(ValueError, match="widget 'b' is registered twice"):
        reg.register("b")(object)


def test_discovery_imports_every_module_of_a_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("one", "two"):
        (pkg / f"{name}.py").write_text(f"from registry_probe import REG\nREG.register('{name}')(object)\n")
    probe = tmp_path / "registry_probe.py"
    probe.write_text(
        "from vitsearch.space.registry import Registry\nREG = Registry('plugin', discover=('fake_plugins',))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import registry_probe

        assert "fake_plugins.one" not in sys.modules  # nothing imported before the first lookup
        assert registry_probe.REG.names() == ["one", "two"]
    finally:
        for name in ("registry_probe", "fake_plugins", "fake_plugins.one", "fake_plugins.two"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("lookup", "kind"),
    [
        ("vitsearch.space.registry:get_mixer", "mixer"),
        ("vitsearch.space.registry:get_downsample", "downsample"),
        ("vitsearch.space.presets:get_preset", "preset"),
        ("vitsearch.evaluators.base:get_evaluator_class", "evaluator"),
        ("vitsearch.evaluators.pruners:make_pruner", "pruner"),
        ("vitsearch.evaluators.latency:BACKENDS.get", "latency backend"),
    ],
)
def test_every_kind_raises_the_one_error(lookup, kind):
    import importlib

    module, attr = lookup.split(":")
    fn = importlib.import_module(module)
    for part in attr.split("."):
        fn = getattr(fn, part)
    with pytest.raises(UnknownNameError, match=rf"^unknown {kind} 'nope' \(choose from \w"):
        fn("nope")


def test_samplers_are_a_registry_and_keep_the_flag_message():
    from vitsearch.search.plan import SAMPLERS, make_sampler

    assert set(SAMPLERS.names()) == {"nsga2", "random", "tpe"}
    with pytest.raises(ValueError, match=r"^--sampler: unknown 'grid' \(choose from auto, nsga2, random, tpe\)$"):
        make_sampler("grid")
