"""Repositories: where pages and files come from (remote indexes over HTTP; trees, hosted and proxy
sources with the server and policy work)."""
