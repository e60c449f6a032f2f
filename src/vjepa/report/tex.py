"""LaTeX text from arbitrary strings: settings, file names and paths printed in the report."""


def tex_escape(text) -> str:
    out = str(text).replace("\\", "\0")
    for a, b in (
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("$", r"\$"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\^{}"),
    ):
        out = out.replace(a, b)
    return out.replace("\0", r"\textbackslash{}")
