"""Entry point: ``python train.py {fit,validate,test} --config configs/....yaml``."""
from lightning_modules.cli import cli_main

if __name__ == "__main__":
    cli_main()
