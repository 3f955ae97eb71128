"""The harness's pytest plugin: the ``pytest11`` entry point (pyproject.toml) and the name
``-p harness.plugin`` loads. The plugin itself is the package harness.pytestplugin; this
module only has pytest register its parts.

The fixtures suites use (device_name, variant_case, variant, device_spec, measure) are
described in harness/pytestplugin/fixtures.py.
"""
from .pytestplugin import PLUGIN_MODULES

pytest_plugins = PLUGIN_MODULES
