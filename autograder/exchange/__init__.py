"""nbgrader's exchange on a shared machine: the classes students' servers run (``plugins``) and the
instructor's publish, collect and return (``instructor``).

``autograder.exchange.PrivateSubmit`` (and the other plugin names) was this package's flat module
before the autograder had layers; a deployed hub config may still name it, so those names resolve
here, lazily, to ``autograder.exchange.plugins``.
"""
_PLUGIN_NAMES = ("PrivateReleaseAssignment", "PrivateSubmit", "PrivateReleaseFeedback", "FACTORY", "ROOT_MODE")


def __getattr__(name: str):
    if name in _PLUGIN_NAMES:
        from autograder.exchange import plugins

        return getattr(plugins, name)
    raise AttributeError(f"module 'autograder.exchange' has no attribute {name!r}")
