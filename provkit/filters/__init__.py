"""provkit.filters"""
