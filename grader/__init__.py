"""grader: mark a written recall session against its source material.

Library first: `grade()` is what the CLI and any service call. Needs the `grader` extra
(`pip install '.[grader]'`); ankigen itself never imports this package.
"""

__version__ = "0.1.0"
