"""References the plugin's tests publish under (imported by conftest and the tests)."""

BASE = "acme/tiny"
BASE_VERSION = "1.0.0"
ADAPTER = "acme/tiny-lora"
