"""The harness's pytest plugin: the ``pytest11`` entry point (pyproject.toml) and the name
``-p harness.plugin`` loads. The plugin itself is the package harness.pytestplugin; this
module only has pytest register its parts.

Fixtures for suites (harness.pytestplugin.fixtures):
    device_name   the device under test (parametrized from --device, default local)
    variant_case  (manifest, recipe) pair (parametrized from models/*.yaml)
    variant       the built Variant (file, size, params, MACs, host accuracy)
    device_spec   the validated DeviceSpec
    measure       measure(**settings) -> Measurement for this device and variant, taken once
                  per session and shared by every suite that asks for the same thing
"""
from .pytestplugin import PLUGIN_MODULES

pytest_plugins = PLUGIN_MODULES
