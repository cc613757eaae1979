from contactmsg.main import app

app()
