"""The bundled demo: a small project with a failing test, a playbook that fixes it, a policy."""
