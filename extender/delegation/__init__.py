"""delegation"""
