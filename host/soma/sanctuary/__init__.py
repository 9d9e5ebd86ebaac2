"""Sleep programs for a sanctuary: the program file, its checks and its wire form."""
