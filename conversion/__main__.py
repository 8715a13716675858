"""``python -m conversion ...``: the conversion CLI (``conversion.convert``)."""
from conversion.convert import main

if __name__ == "__main__":
    main()
