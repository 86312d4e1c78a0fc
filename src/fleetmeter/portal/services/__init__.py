"""Domain logic behind the routes and the CLI; functions take keyword-only arguments."""
