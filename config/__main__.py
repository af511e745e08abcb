"""``python -m config``: rewrite config/igloo.env.example and docs/configuration.md from the settings
table."""

from config.render import write

if __name__ == "__main__":
    for path in write():
        print(f"wrote {path}")
