"""Service functions: the logic behind each command, free of any CLI concern."""
