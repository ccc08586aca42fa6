"""Reference managers built on the framework (the share service)."""
