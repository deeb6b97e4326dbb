"""Product images (reference 004): signed intake, the product job state machine, the
built-in providers (segment, backgrounds, composite, publish) and their job handlers."""
