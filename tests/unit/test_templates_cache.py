"""Feedback templates compiled once per process (``autograder.pipeline.templates``), and an edited
template compiled again."""
from __future__ import annotations

import jinja2

from autograder.pipeline import templates


def test_a_template_is_compiled_once_and_again_when_it_changes(tmp_path, monkeypatch):
    (tmp_path / "page.j2").write_text("hello {{ who }}")
    compiled: list[str] = []
    cache = templates.MemoryBytecodeCache()

    def env():
        e = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)), bytecode_cache=cache)
        original = e._compile
        e._compile = lambda source, filename: (compiled.append(filename), original(source, filename))[1]
        return e

    assert env().get_template("page.j2").render(who="a") == "hello a"
    assert env().get_template("page.j2").render(who="b") == "hello b"
    assert len(compiled) == 1, "the second environment used the cached code"
    (tmp_path / "page.j2").write_text("bye {{ who }}")
    assert env().get_template("page.j2").render(who="c") == "bye c", "an edited template is compiled again"
    assert len(compiled) == 2


def test_install_gives_nbconvert_exporters_the_cache():
    from nbconvert.exporters import HTMLExporter

    templates.install()
    templates.install()  # twice is once
    assert HTMLExporter().environment.bytecode_cache is templates.CACHE
