"""How a round is named wherever it appears: directories, episode collections, dataset tags, lineage files."""


def round_name(number: int) -> str:
    """``round-0003``: round N in directory and file names and in episode ids."""
    return f"round-{number:04d}"
