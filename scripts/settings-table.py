"""Print the settings table of docs/configuration.md from `service.config.Settings`."""

from service.config import Settings


def main() -> None:
    print("| variable | default | meaning |")
    print("|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()
        shown = "unset" if default is None else "none" if default == [] else default
        print(f"| `MNIST_{name.upper()}` | `{shown}` | {field.description or ''} |")


if __name__ == "__main__":
    main()
