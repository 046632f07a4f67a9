"""How LuminaGuard shows things to a person: the plain terminal, and (later) Textual and web views."""
