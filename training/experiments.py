"""Placeholder replaced below."""

import argparse


def add_experiments_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    return None
