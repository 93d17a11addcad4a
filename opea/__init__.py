"""OPEA side of opea-chat: the stack as data, the ChatQnA wire format, the megaservice and
its client."""
